"""Every ``asic-reservoir ...`` command; the libraries below have none."""
