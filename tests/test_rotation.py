import torch

from ssgen.pretext.rotation import rotate4


def test_all_four_angles_exact_and_labelled():
    # A 2x2 image with distinct corners: each rotation moves them to known places.
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    rotated, labels = rotate4(x)
    assert labels.tolist() == [0, 1, 2, 3]
    assert rotated[0, 0].tolist() == [[1, 2], [3, 4]]
    assert rotated[1, 0].tolist() == [[2, 4], [1, 3]]   # 90 degrees counter-clockwise
    assert rotated[2, 0].tolist() == [[4, 3], [2, 1]]   # 180
    assert rotated[3, 0].tolist() == [[3, 1], [4, 2]]   # 270


def test_grouped_by_angle_and_invertible():
    x = torch.randn(5, 3, 8, 8)
    rotated, labels = rotate4(x)
    assert rotated.shape == (20, 3, 8, 8)
    assert labels.tolist() == [0] * 5 + [1] * 5 + [2] * 5 + [3] * 5
    for k in range(4):
        back = torch.rot90(rotated[5 * k: 5 * (k + 1)], -k, dims=(2, 3))
        assert torch.equal(back, x)
