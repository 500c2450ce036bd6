"""Phase E models: PtychoPINN (unsupervised, physics-informed) and the supervised Baseline.

Submodules: :mod:`.physics` (differentiable forward model and Keras layers), :mod:`.pinn` and
:mod:`.baseline` (networks), :mod:`.data` (chunk loading and streaming), :mod:`.train`,
:mod:`.infer`. TensorFlow is imported by these submodules, so import them after
``ptychostudy.runtime.configure_tensorflow`` has set the thread budget.
"""
