"""Data in: the shapes world, CSV image-caption datasets, CLIP preprocessing, the batch loader."""
