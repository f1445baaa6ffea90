"""The 29 class names in the model's output order, and the mapping from folder names to them."""

CLASS_NAMES: tuple[str, ...] = (
    *(chr(c) for c in range(ord("A"), ord("Z") + 1)),
    "del",
    "nothing",
    "space",
)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}  # files a labelled tree holds
NOTHING = CLASS_NAMES.index("nothing")  # no hand: also the backgrounds that training pastes hands onto

_BY_LOWER = {name.lower(): name for name in CLASS_NAMES}


def class_from_folder(folder_name: str) -> str | None:
    """Map a folder name such as `Del`, `a` or `SPACE` to its class, or None if it is not one."""
    return _BY_LOWER.get(folder_name.strip().lower())
