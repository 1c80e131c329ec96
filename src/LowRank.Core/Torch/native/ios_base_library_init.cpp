// Compatibility shim for hosts whose libstdc++ predates GCC 13 (GLIBCXX_3.4.32), e.g. Debian 12 and Ubuntu 22.04.
// TorchSharp's libLibTorchSharp.so was linked against GCC 13 headers, whose <iostream> references
// std::ios_base_library_init() only to pull in libstdc++'s stream initialisation. This file gives that symbol an
// unversioned definition doing the same job (constructing an ios_base::Init), so the patched library resolves it.
// Built by LibStdCxxCompat with the host's g++ into LowRank's native cache; never shipped as a binary.
#include <ios>

extern "C" void lowrank_ios_base_library_init() __asm__("_ZSt21ios_base_library_initv");

extern "C" __attribute__((visibility("default"))) void lowrank_ios_base_library_init()
{
    static std::ios_base::Init init;
}
