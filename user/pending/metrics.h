struct metrics_view { struct registry *reg; struct queue *q; struct sink *sink; const char *version; };
struct metrics_server *metrics_start(const char *addr, const struct metrics_view *v, char *err, size_t errlen);
void metrics_stop(struct metrics_server *m);
