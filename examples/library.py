"""ssgen's parts in a training loop of one's own: a small discriminator-like encoder trained with
SimCLR's views and loss plus SS-GAN's rotation task, then the linear probe on its features; and a
trained run's discriminator through the same probe, and samples from its generator.

    python examples/library.py [RUN_DIR]   # seconds on a CPU; RUN_DIR: a trained run, e.g. runs/quick
"""

import sys

import torch
from torch import nn

import ssgen

torch.manual_seed(0)
images, labels = ssgen.load_images("shapes", "train", size=512)   # uint8 [N,3,32,32], labels [N]
test_images, test_labels = ssgen.load_images("shapes", "test", size=256)

encoder = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten())       # your own network: [B, 64]
projector, rotation_head = nn.Linear(64, 32), nn.Linear(64, 4)
views = ssgen.augmenter("simclr", resolution=32)                      # two augmented views per image
optimizer = torch.optim.Adam([*encoder.parameters(), *projector.parameters(), *rotation_head.parameters()], lr=2e-3)

for _ in range(60):
    batch = ssgen.to_float(images[torch.randint(len(images), (64,))])  # [-1, 1]
    first, second = views(batch)
    contrastive = ssgen.nt_xent(projector(encoder(first)), projector(encoder(second)), temperature=0.5)
    rotation, accuracy = ssgen.rotation_loss(lambda x: rotation_head(encoder(x)), batch)
    optimizer.zero_grad()
    (contrastive + rotation).backward()
    optimizer.step()

with torch.no_grad():
    train_x, test_x = encoder(ssgen.to_float(images)), encoder(ssgen.to_float(test_images))
top1 = ssgen.linear_probe(train_x, labels, test_x, test_labels)
print(f"rotation accuracy {accuracy:.2f}, linear probe {100 * top1:.1f}% top-1 on {len(test_x)} test images")

if len(sys.argv) > 1:  # a trained run (ssgen train): D's features and G's samples
    run = ssgen.load_checkpoint(sys.argv[1])
    with torch.no_grad():
        train_x, test_x = (next(iter(run.method.features(ssgen.to_float(x)).values())) for x in (images, test_images))
        samples = run.method.sample(16)                               # [16,3,32,32] in [-1, 1]
    top1 = ssgen.linear_probe(train_x, labels, test_x, test_labels)
    print(f"{run.cfg.method.name} at step {run.step}: its D's features {100 * top1:.1f}% top-1; {len(samples)} samples")
