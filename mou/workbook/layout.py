"""Names shared by the template builder and the reader: hidden sheets and identity names."""

from __future__ import annotations

META_SHEET = "_mou_meta"
LISTS_SHEET = "_mou_lists"
IDENTITY_NAME = "mou_identity"  # workbook-level defined name holding the signed token
IDENTITY_PROPERTY = "mou_identity"  # custom document property holding the same token
LIST_NAME_PREFIX = "mou_list_"

# Extra columns in front of the inputs of a table whose rows come from a list.
ROW_KEY_COLUMNS = 2  # code, label
