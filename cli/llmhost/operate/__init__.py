"""Operating a served host: the GPU metrics exporter and the thermal guard."""
