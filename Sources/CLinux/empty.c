// Header-only target: see include/CLinux.h.
