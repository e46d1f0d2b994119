import Foundation
import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes

/// Drops connections that hold the server without finishing a request (slowloris): the request
/// headers must be complete within `header` of the connection opening (or within `idle` of the
/// previous response, on a kept-alive connection), and the body within `body` of the headers.
/// Sits after the HTTP decoder, so it sees whole request heads, and before request handling.
final class SlowClientGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    struct Limits: Sendable {
        var header: TimeAmount
        var body: TimeAmount
        var idle: TimeAmount
    }

    let limits: Limits
    /// When the connection is dropped unless something moves it; nil: a request is being answered.
    private var deadline: NIODeadline?
    /// One timer per connection, never further out than `wake`: setting a deadline is a clock read,
    /// not a scheduled task (two per request cost ≈ 3 % of a small request's CPU). When it fires it
    /// closes the connection if the deadline passed, else sleeps again until the deadline (or `wake`).
    private var timer: Scheduled<Void>?
    private let wake: TimeAmount
    private var requestsInFlight = 0
    /// A request whose head arrived but not yet its end (its body is still being read).
    private var bodyPending = false

    init(limits: Limits) {
        self.limits = limits
        wake = min(limits.header, limits.body, limits.idle)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context, limits.header) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context, limits.header)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) { stop() }

    func channelInactive(context: ChannelHandlerContext) {
        stop()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            requestsInFlight += 1
            bodyPending = true
            arm(context, limits.body)
        case .end:
            bodyPending = false
            // The request is in. If its response already went out, the connection is idle now;
            // otherwise the response may take what it takes.
            if requestsInFlight == 0 { arm(context, limits.idle) } else { disarm() }
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            requestsInFlight = max(0, requestsInFlight - 1)
            // A body still arriving keeps its own deadline; else the connection is idle from here.
            if requestsInFlight == 0 && !bodyPending { arm(context, limits.idle) }
        }
        context.write(data, promise: promise)
    }

    private func arm(_ context: ChannelHandlerContext, _ after: TimeAmount) {
        let now = NIODeadline.now()
        deadline = now + after
        // A running timer fires no later than `wake` from when it was set, which is before any new
        // deadline (every limit is at least `wake`): it finds the deadline then and sleeps on.
        if timer != nil { return }
        schedule(context, at: now + wake)
    }

    /// Only while no timer runs (from `arm`, or from `fire` once its own has run).
    private func schedule(_ context: ChannelHandlerContext, at: NIODeadline) {
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: at) { [self] in fire(context) }
    }

    private func fire(_ context: ChannelHandlerContext) {
        timer = nil
        guard let deadline else { return }
        let now = NIODeadline.now()
        if now >= deadline {
            context.channel.close(promise: nil)
        } else {
            schedule(context, at: min(deadline, now + wake))
        }
    }

    /// A request is being answered: no deadline (the timer, if any, finds none and stops).
    private func disarm() { deadline = nil }

    private func stop() {
        deadline = nil
        timer?.cancel()
        timer = nil
    }
}
