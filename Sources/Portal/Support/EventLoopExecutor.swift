import NIOCore
import NIOPosix

/// Makes NIO's event loops Swift concurrency's global executor, so a request's handler runs on
/// the thread that read it instead of being handed to Swift's thread pool and back (four busy
/// threads on a two-core machine become two). Measured in docs/performance.md ("Issue 19, fourth
/// steps"): TokenReview p99 and PostgreSQL refresh gain, and SQLite write transactions run on
/// their own thread (`WriterThread`) so a lock holder never waits behind HTTP work.
///
/// Blocking calls never run on these threads: libldap and GSSAPI have their own pools, bcrypt
/// runs on NIO's thread pool, SQLite writes on the writer thread. Once per process, before serving.
enum EventLoopExecutor {
    static func install() -> Bool {
        NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }
}
