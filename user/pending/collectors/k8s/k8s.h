#include <stdbool.h>
#include <stddef.h>
struct tapio_config;
struct collector *k8s_collector_new(const struct tapio_config *cfg, char *err, size_t errlen);
bool k8s_collector_available(const struct tapio_config *cfg);
