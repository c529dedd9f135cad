"""Stand-in for `google.colab.files`: download() checks the file as Colab does, records it and copies it into
$COLAB_STUB_DOWNLOADS (when set), where a test can look at what the browser would have received."""
from __future__ import annotations

import os
import shutil

downloaded: list[str] = []


def download(filename: str) -> None:
    """Like Colab's: a missing file raises FileNotFoundError('Cannot find file: ...'); else it is 'sent'."""
    if not os.path.exists(filename):
        raise FileNotFoundError(f"Cannot find file: {filename}")
    downloaded.append(filename)
    target = os.environ.get("COLAB_STUB_DOWNLOADS")
    if target:
        os.makedirs(target, exist_ok=True)
        shutil.copy(filename, os.path.join(target, os.path.basename(filename)))
