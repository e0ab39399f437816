// Role, state and other enum numbers of AT-SPI. Header only: libatspi itself is never linked.
#include "/usr/include/at-spi-2.0/atspi/atspi-constants.h"
