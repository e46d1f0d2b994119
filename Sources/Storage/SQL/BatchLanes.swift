/// The lanes of a group commit (`RotationBatcher`, `AuditBatcher`): how many batches are in flight
/// and when the latest began. A further lane opens only once no batch has begun for `spread`.
struct BatchLanes {
    var inFlight = 0
    var lastStart = ContinuousClock.now

    /// Takes a lane for a new batch if one is free and, unless none is in flight, no batch has
    /// started for `spread`.
    mutating func open(lanes: Int, spread: Duration) -> Bool {
        let now = ContinuousClock.now
        guard inFlight < lanes, inFlight == 0 || now - lastStart >= spread else { return false }
        inFlight += 1
        lastStart = now
        return true
    }
}

extension Array {
    /// Removes and returns up to the first `n` elements.
    mutating func takeFirst(_ n: Int) -> [Element] {
        let k = Swift.max(0, Swift.min(n, count))
        let out = Array(prefix(k))
        removeFirst(k)
        return out
    }
}
