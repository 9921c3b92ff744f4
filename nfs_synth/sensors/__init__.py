"""Sensor simulators: DVS-Voltmeter-style events and integrate-and-fire spikes (numpy/numba, no Blender)."""
