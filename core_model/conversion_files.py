"""The files a conversion writes beside a converted checkpoint's weights, and the conversion's version.

Kept apart from ``core_model.convert`` (which imports torch) so that checking whether a prepared base is
current costs no heavy import: a command that only needs the base's folder or fingerprint stays fast.
"""

from __future__ import annotations

from pathlib import Path

CHANNEL_ORDER_FILE = Path("conversion") / "channel_order.safetensors"
# Bumped when a conversion of the same source gives other weights; a prepared base of an older version
# is converted again. 2: the hybrid gates are set by the conversion (were left to the random init).
CONVERSION_VERSION = 2
VERSION_FILE = Path("conversion") / "version.json"
