"""One sub-package per industry, all of the same shape; see ``domains.registry``."""

from domains.registry import Domain, get_domain, load_all, register_domain

__all__ = ["Domain", "get_domain", "load_all", "register_domain"]
