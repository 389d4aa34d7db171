// SPDX-License-Identifier: Apache-2.0
#include "util/vec.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

int vec_reserve(void **v, size_t *cap, size_t need, size_t elem, size_t min)
{
	if (need <= *cap)
		return 0;
	size_t nc = *cap ? *cap : (min ? min : 1);
	while (nc < need) {
		if (nc > SIZE_MAX / 2)
			return -ENOMEM;
		nc *= 2;
	}
	if (elem && nc > SIZE_MAX / elem)
		return -ENOMEM;
	void *nv = realloc(*v, nc * elem);
	if (!nv)
		return -ENOMEM;
	*v = nv;
	*cap = nc;
	return 0;
}
