/* Plain-text tables and formatting shared by the command-line tools. */
#ifndef FLAME_CLI_TABLE_H
#define FLAME_CLI_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include <flame/flame.h>

typedef struct cli_table {
    size_t ncols, nrows, cap;
    char **cells; /* row-major, row 0 is the header */
} cli_table;

void cli_table_init(cli_table *t, size_t ncols, const char *const *header);
/* Adds a row of ncols strings (copied). */
void cli_table_row(cli_table *t, const char *const *cells);
/* Columns two spaces apart, no padding at the ends (our own tools). */
void cli_table_print(const cli_table *t);
/* As comfy-table's NOTHING preset prints (Flame's tools; see table.c). */
void cli_table_print_comfy(const cli_table *t);
void cli_table_free(cli_table *t);

/* Memory as Flame's flmctl shows it: "1Gi", "512Mi", "64Ki" or "100B". */
void cli_format_mem(char *buf, size_t n, uint64_t m);
/* "cpu=1,mem=1Gi,gpu=0" (Flame's flmctl), or "-" when it asks for nothing. */
void cli_format_resreq(char *buf, size_t n, const flame_resreq *r);
/* Unix ms -> "YYYY-MM-DD HH:MM:SS" local time; "-" for 0. */
void cli_format_time(char *buf, size_t n, int64_t ms);
/* 1000 -> "1,000" (indicatif's HumanCount, as Flame's flmping prints counts). */
void cli_human_count(char *buf, size_t n, uint64_t v);
/* 0 -> "0 B", 65536000 -> "65.5 MB" (the bytesize crate's Display). */
void cli_byte_size(char *buf, size_t n, uint64_t v);
/* Bytes as text when printable, else "<N bytes>"; "-" when unset. */
void cli_format_bytes(char *buf, size_t n, const flame_bytes *b);

#endif
