"""Training: augmentation, the dataset and its seeds, the loss, the loop, the learning-rate search."""
