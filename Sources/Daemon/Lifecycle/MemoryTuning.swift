import CLinux

/// glibc malloc settings for a long-lived daemon that is idle most of the time.
public enum MemoryTuning {
    // <malloc.h> parameter numbers (negative macros that Swift may not import).
    private static let trimThreshold: Int32 = -1  // M_TRIM_THRESHOLD
    private static let mmapThreshold: Int32 = -3  // M_MMAP_THRESHOLD
    private static let arenaMax: Int32 = -8  // M_ARENA_MAX

    /// Call first thing in `main`, before other threads allocate.
    public static func configure() {
        #if os(Linux)
        // Two arenas: glibc otherwise grows up to 8 per core, one per thread that meets
        // contention, and each keeps its own freed pages resident. The work runs on two event
        // loops and the D-Bus thread.
        _ = mallopt(arenaMax, 2)
        // Fixed thresholds: by default glibc raises the mmap threshold to the largest block
        // freed (up to 32 MB), so after the first large reply (a snapshot is hundreds of KB)
        // such buffers come from the heap and their pages stay resident once freed.
        _ = mallopt(mmapThreshold, 256 << 10)
        _ = mallopt(trimThreshold, 512 << 10)
        #endif
    }

    /// Gives free heap pages back to the kernel (all arenas, not only the top of the heap).
    static func trim() {
        #if os(Linux)
        _ = malloc_trim(0)
        #endif
    }
}
