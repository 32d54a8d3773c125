"""Data: synthetic EM-like domains, lazy patch sampling, normalisation and augmentation."""
