/* maps.c: placeholder until implemented. */
