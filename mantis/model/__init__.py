"""The model: ids, definitions (clusters, jobs, stages, machines, constraints) and their JSON codecs."""
