/* svcctl/table.c — aligned text tables, as micro's CLI prints them. */
#include "svcctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ctl_table {
    int ncols;
    char **cells;     /* rows * ncols, row 0 = headers */
    size_t rows, cap;
};

static void s_add(ctl_table *t, const char *const *cells)
{
    if (t->rows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        char **n = realloc(t->cells, cap * (size_t)t->ncols * sizeof *n);
        if (!n)
            return;
        t->cells = n;
        t->cap = cap;
    }
    for (int i = 0; i < t->ncols; i++)
        t->cells[t->rows * (size_t)t->ncols + (size_t)i] = strdup(cells[i] ? cells[i] : "");
    t->rows++;
}

ctl_table *ctl_table_new(int ncols, const char *const *headers)
{
    ctl_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->ncols = ncols;
    s_add(t, headers);
    return t;
}

void ctl_table_add(ctl_table *t, const char *const *cells)
{
    s_add(t, cells);
}

void ctl_table_print(ctl_table *t)
{
    size_t width[16] = { 0 };
    for (size_t r = 0; r < t->rows; r++)
        for (int c = 0; c < t->ncols && c < 16; c++) {
            const char *s = t->cells[r * (size_t)t->ncols + (size_t)c];
            size_t w = s ? strlen(s) : 0;
            if (w > width[c])
                width[c] = w;
        }
    for (size_t r = 0; r < t->rows; r++) {
        for (int c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * (size_t)t->ncols + (size_t)c];
            if (c == t->ncols - 1)
                printf("%s\n", s ? s : "");
            else
                printf("%-*s  ", (int)width[c], s ? s : "");
        }
    }
}

void ctl_table_free(ctl_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->rows * (size_t)t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}
