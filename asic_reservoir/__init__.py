"""asic-reservoir: mining ASICs as physical reservoir computers, measured honestly."""

__version__ = "0.1.0"
