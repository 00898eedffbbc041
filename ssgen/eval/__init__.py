"""What is measured: FID/FD, linear probes, reports."""
