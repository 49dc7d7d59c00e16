"""The operators, one module each: schema, checks, fake kernel and eager kernels side by side.

Importing this package imports every module in it, so a new operator is a new module here
(and its converter under the same name in ``quant_graph/converters/``); nothing else lists
the operators.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
