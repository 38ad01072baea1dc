"""The model repository: names, files on disk, and the models loaded from them."""
