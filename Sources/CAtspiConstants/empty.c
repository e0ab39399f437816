// Intentionally empty: this target only exports atspi-constants.h.
