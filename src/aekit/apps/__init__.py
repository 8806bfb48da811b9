"""Applications built on trained autoencoders, one file each (restoration, compression, anomaly
detection, retrieval, features)."""
