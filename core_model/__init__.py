"""The shared base model of DomainSuite: configuration, modules, conversion, generation."""

from core_model.base import Base, load_base, prepare_embedded, resolve_base_path
from core_model.errors import BaseModelError, DSuiteError

__all__ = ["Base", "BaseModelError", "DSuiteError", "load_base", "prepare_embedded", "resolve_base_path"]
