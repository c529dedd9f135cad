"""A stand-in for Colab's `google.colab` package (tests only): `drive.mount` and `files.download`."""
