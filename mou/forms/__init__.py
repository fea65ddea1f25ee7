"""Form specifications: one YAML file per instrument drives templates, reading and reports."""

from mou.forms.spec import FieldSpec, FormSpec, Section, load_form, load_forms

__all__ = ["FieldSpec", "FormSpec", "Section", "load_form", "load_forms"]
