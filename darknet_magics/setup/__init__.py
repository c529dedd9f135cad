"""Set-up: the machine (GPU, CUDA, cuDNN, OpenCV, Colab, Drive), darknet's binary and flavor, clone and build."""
