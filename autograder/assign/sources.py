"""What the course is built from, written once.

The same Sources section ends every notebook (a cell kept by
``boilerplate.py``), both published editions' READMEs (``publish.py``) and
this repository's README (checked by tests/test_sources.py), so a credit or
a licence note cannot be fixed in one place and forgotten in another.
"""

D2L = "https://d2l.ai/chapter_convolutional-modern/resnet.html"
D2L_LICENCE = "https://creativecommons.org/licenses/by-sa/4.0/"
RESNET_PAPER = "https://arxiv.org/abs/1512.03385"
IDENTITY_PAPER = "https://arxiv.org/abs/1603.05027"

# Every link the section must carry wherever it appears.
LINKS = (D2L, D2L_LICENCE, RESNET_PAPER, IDENTITY_PAPER)

SOURCES = f"""\
## Sources

The course is written in its own words and code; it draws on these works.

* Aston Zhang, Zachary C. Lipton, Mu Li and Alexander J. Smola, *Dive into
  Deep Learning* (D2L), section "Residual Networks (ResNet) and ResNeXt",
  MXNet version: <{D2L}>. The first notebook follows its structure, its
  ResNet-18, its numbers (11,186,186 parameters; Fashion-MNIST at 96x96 with
  learning rate 0.05, 10 epochs and batches of 256) and its five exercises.
  D2L's text is licensed under the Creative Commons Attribution-ShareAlike
  4.0 licence (CC BY-SA 4.0, <{D2L_LICENCE}>) and its sample code under a
  modified MIT licence; no passage of its text is copied here.
* Kaiming He, Xiangyu Zhang, Shaoqing Ren and Jian Sun, "Deep Residual
  Learning for Image Recognition", CVPR 2016, arXiv:1512.03385,
  <{RESNET_PAPER}>: the residual block, the degradation problem, ResNet-18 to
  -152, the bottleneck block, the shortcut options A, B and C, and the
  results quoted in the second notebook.
* Kaiming He, Xiangyu Zhang, Shaoqing Ren and Jian Sun, "Identity Mappings in
  Deep Residual Networks", ECCV 2016, arXiv:1603.05027, <{IDENTITY_PAPER}>:
  the pre-activation block and the 1001-layer network.
* *ResNet: A Comprehensive Overview*, a TensorFlow/Keras notebook (called
  "the Keras overview" in the second notebook): the history and pros and
  cons it surveys, its bottleneck `residual_block` with a projection
  shortcut, its small network for CIFAR-10 and its training with Adam. The
  copy this course was built from names neither its author nor a licence.
* Data: Fashion-MNIST (Han Xiao, Kashif Rasul and Roland Vollgraf, 2017,
  MIT licence), CIFAR-10 (Alex Krizhevsky, 2009), and the handwritten digits
  that ship with scikit-learn (`sklearn.datasets.load_digits`, from the UCI
  Optical Recognition of Handwritten Digits data set).
"""
