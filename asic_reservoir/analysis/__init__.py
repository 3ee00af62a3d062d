"""From run files to scores: states, the ridge readout, tasks and capacities, baselines, report."""
