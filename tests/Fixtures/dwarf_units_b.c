/* The second compilation unit of the dwarf_units fixture. */
static inline int dwb_clamp(int v)
{
    return v > 1000 ? 1000 : v;
}

__attribute__((noinline)) int dwb_scale(int v)
{
    return dwb_clamp(v * 7);
}

int dwb_offset(int v)
{
    return dwb_clamp(v + 3) - 1;
}
