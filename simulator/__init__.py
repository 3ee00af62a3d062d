"""Software Antminer S9, Lucky Miner LV06 and Goldshell LB-Box for CI and development."""
