"""Training a student conditioned generator by distillation from the imported one.

``network`` (the student), ``losses`` (pixel, perceptual, style-code, PatchGAN),
``data`` (photo crops and style-code sampling), ``trainer`` (the resumable loop).
``stylerec train-generator`` drives them; :mod:`stylizer.student` loads the result
for production.
"""
