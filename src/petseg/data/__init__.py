"""Data: the archives or a local copy, decoding photos and trimaps, the split, the arrays, the breeds. No torch."""
