#include <cblas.h>
// OpenBLAS extension: set the number of threads BLAS uses.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
// OpenBLAS extension: the name of the kernel set the library picked for this CPU.
char* openblas_get_corename(void);
