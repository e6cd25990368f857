// The frozen ABI layout, checked as C++17 (see layout.c).
#include "layout.c"
