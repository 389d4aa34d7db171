#include <stddef.h>
struct tapio_config; struct sink;
struct sink *sink_nats_new(const char *url, const struct tapio_config *cfg, char *err, size_t errlen);
