#include <stdbool.h>
#include <stddef.h>
struct tapio_config;
struct collector *etcd_collector_new(const struct tapio_config *cfg, char *err, size_t errlen);
bool etcd_collector_available(const struct tapio_config *cfg);
