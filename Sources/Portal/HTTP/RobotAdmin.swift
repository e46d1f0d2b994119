import Foundation
import IdP

/// Robot accounts (admin only; CLI and UI share it).
struct RobotAdmin {
    let runtime: Runtime

    func add(name raw: String, team: String, groups: String, description: String, actor: String) async throws -> Robot {
        let name = raw.trimmingCharacters(in: .whitespaces).lowercased()
        guard !name.isEmpty, name.count <= 63, name.allSatisfy({ ($0.isLetter && $0.isASCII) || $0.isNumber || $0 == "-" }), name.first != "-" else {
            throw UserAdminError("A robot name uses a-z, 0-9 and '-' (at most 63).")
        }
        let team = team.trimmingCharacters(in: .whitespaces)
        guard !team.isEmpty else { throw UserAdminError("A robot needs an owning team.") }
        let list = groups.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let robot = Robot(id: runtime.random.uuid(), name: name, team: team, description: description, groups: list,
                          createdAt: runtime.clock.now(), createdBy: actor)
        do { try await runtime.storage.createRobot(robot) } catch let e as StorageError where e.isConflict {
            throw UserAdminError("A robot named \(name) exists.")
        }
        await runtime.provider.auditor.record("admin.robot.add", actor: actor, subject: robot.id, details: ["name": name, "team": team])
        return robot
    }

    func setDisabled(_ id: String, disabled: Bool, actor: String) async throws {
        guard try await runtime.storage.setRobotDisabled(id: id, disabled: disabled) else { throw UserAdminError("No such robot.") }
        await runtime.provider.auditor.record(disabled ? "admin.robot.disable" : "admin.robot.enable", actor: actor, subject: id)
    }

    func delete(_ id: String, actor: String) async throws {
        _ = try await runtime.storage.revokeCredentials(ownerID: id, now: runtime.clock.now())
        guard try await runtime.storage.deleteRobot(id: id) else { throw UserAdminError("No such robot.") }
        await runtime.provider.auditor.record("admin.robot.delete", actor: actor, subject: id)
    }
}
