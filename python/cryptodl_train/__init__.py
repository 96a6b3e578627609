"""cryptodl_train: the training companion of cryptodl.

Trains convolutional networks whose activations are low-degree polynomials (so that
they can run on CKKS-encrypted data, CryptoDL / CryptoNets style), measures what that
costs against a ReLU twin, and exports the trained models to ONNX for the C side.

Modules: polyact (polynomial activations and their approximations), data (numpy
loaders for the original MNIST / Fashion-MNIST / CIFAR-10 files), models (the recipes'
networks), fold (batch-norm folding), export (ONNX export and C-side fixtures),
train (the command-line trainer with checkpoint/resume).
"""
