"""Home devices: the registry, their assignment to patients, and a simulator of them."""
