"""The bottom layer: errors, images and TIFF files, parameters, progress, the embedding cache, micro-sam's
private names; it imports nothing else of the package."""
