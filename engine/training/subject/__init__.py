"""Subject LoRAs (DreamBooth-style): a plain LoRA trained from 3 to 10 photos of one subject in
the backbone's generation mode, stored in the style library beside the styles (adapter kind
``'subject'``).

* :mod:`.config`: :class:`SubjectTrainingConfig` and the photo-count bounds.
* :mod:`.photos`: reading and checking the photos (folder, zip or files).
* :mod:`.augment`: random resized crops and flips.
* :mod:`.lora`: the peft LoRA on the transformer and its diffusers/peft file.
* :mod:`.trainer`: the flow-matching training loop with checkpoints.
* :mod:`.generation`: the subject's prompt, and generating with a library subject.
* :mod:`.add_subject`: :func:`train_subject`, the whole run into the library.
"""

from engine.training.subject.add_subject import SubjectRequest, list_subjects, train_subject
from engine.training.subject.config import MAX_PHOTOS, MIN_PHOTOS, PRESETS, SubjectTrainingConfig
from engine.training.subject.generation import generate_subject

__all__ = ["MAX_PHOTOS", "MIN_PHOTOS", "PRESETS", "SubjectRequest", "SubjectTrainingConfig", "generate_subject", "list_subjects",
           "train_subject"]
