"""User-facing messages of the keys, rewrap and recover commands, in Vietnamese and English.

catalog.py merges these into CATALOG; the same rules apply (same
placeholders in both languages, Vietnamese in NFC). Terms: khóa (key),
phiên bản khóa (key version), xoay vòng (rotate), bọc lại (rewrap), người
quản lý khóa (key custodian), token khôi phục (recovery token), phần mã PIN
(PIN share), phiên khôi phục (recovery session).
"""

from __future__ import annotations

KEY_CATALOG: dict[str, dict[str, str]] = {
    # States and operations, as the daemon names them.
    "key_state.active": {"vi": "đang dùng để niêm phong", "en": "active"},
    "key_state.retired_sealing": {"vi": "ngừng niêm phong, vẫn mở được", "en": "retired for sealing"},
    "key_state.retired_opening": {"vi": "ngừng mở", "en": "retired for opening"},
    "key_state.destroyed": {"vi": "đã hủy", "en": "destroyed"},
    "key_state.none": {"vi": "không có", "en": "none"},
    "key_state.pending": {"vi": "đang chờ xác nhận", "en": "pending"},
    "key_state.done": {"vi": "đã thực hiện", "en": "done"},
    "key_state.rejected": {"vi": "đã bị từ chối", "en": "rejected"},
    "key_state.expired": {"vi": "đã hết hạn", "en": "expired"},
    "key_state.ended": {"vi": "đã kết thúc", "en": "ended"},
    "key_state.failed": {"vi": "thất bại", "en": "failed"},
    "key_operation.create": {"vi": "tạo phiên bản khóa", "en": "create a key version"},
    "key_operation.rotate": {"vi": "xoay vòng khóa", "en": "rotate the key"},
    "key_operation.retire_sealing": {"vi": "ngừng dùng phiên bản khóa để niêm phong", "en": "retire the version for sealing"},
    "key_operation.retire_opening": {"vi": "ngừng dùng phiên bản khóa để mở", "en": "retire the version for opening"},
    "key_operation.destroy": {"vi": "hủy phiên bản khóa", "en": "destroy the key version"},
    "field.version": {"vi": "phiên bản khóa (--version)", "en": "key version (--version)"},
    "field.operation": {"vi": "thao tác với khóa", "en": "key operation"},
    "field.change_id": {"vi": "mã đề xuất thay đổi khóa", "en": "key change id"},
    "field.session_id": {"vi": "mã phiên khôi phục", "en": "recovery session id"},
    "field.pin_share": {"vi": "phần mã PIN", "en": "PIN share"},
    "field.header": {"vi": "phần đầu phong bì", "en": "envelope header"},

    # Help text.
    "help.keys": {
        "vi": "quản lý phiên bản khóa theo độ mật: liệt kê, xoay vòng, ngừng dùng, hủy",
        "en": "manage each level's key versions: list, rotate, retire, destroy",
    },
    "help.keys.list": {
        "vi": "liệt kê mọi phiên bản khóa, trạng thái và số tài liệu còn dùng",
        "en": "list every key version, its state and the documents still under it",
    },
    "help.keys.due": {
        "vi": "liệt kê các khóa đã đến hạn xoay vòng",
        "en": "list the keys past their rotation period",
    },
    "help.keys.pending": {
        "vi": "liệt kê các đề xuất thay đổi khóa đang chờ xác nhận",
        "en": "list the key changes waiting for confirmation",
    },
    "help.keys.create": {
        "vi": "tạo phiên bản khóa mới cho độ mật chưa có khóa đang dùng (ví dụ sau khi mất token)",
        "en": "create a key version for a level without an active one (for example after a token was lost)",
    },
    "help.keys.rotate": {
        "vi": "xoay vòng khóa: tạo phiên bản mới để niêm phong, phiên bản cũ vẫn mở được",
        "en": "rotate the key: a new version seals, the old one still opens",
    },
    "help.keys.retire": {
        "vi": "ngừng dùng một phiên bản khóa để niêm phong, hoặc để mở",
        "en": "retire a key version for sealing, or for opening",
    },
    "help.keys.retire.for": {
        "vi": "sealing: không niêm phong nữa; opening: không mở nữa (vẫn bọc lại được)",
        "en": "sealing: no more seals; opening: no more opens (rewrap still works)",
    },
    "help.keys.destroy": {
        "vi": "hủy một phiên bản khóa đã ngừng mở, khi không còn tài liệu nào cần nó",
        "en": "destroy a key version retired for opening once no document needs it",
    },
    "help.keys.confirm": {
        "vi": "xác nhận một đề xuất thay đổi khóa của người quản lý khóa khác",
        "en": "confirm another key custodian's proposed key change",
    },
    "help.keys.reject": {"vi": "từ chối một đề xuất thay đổi khóa", "en": "reject a proposed key change"},
    "help.keys.level": {"vi": "độ mật: mat (Mật) hoặc toi-mat (Tối mật)", "en": "level: mat (Mật) or toi-mat (Tối mật)"},
    "help.keys.version": {"vi": "số phiên bản khóa, từ 1", "en": "key version number, from 1"},
    "help.keys.reason": {
        "vi": "lý do, ghi vào sổ (tối đa 2.000 ký tự)",
        "en": "reason, kept on record (at most 2,000 characters)",
    },
    "help.keys.reject.reason": {
        "vi": "lý do từ chối (1 đến 2.000 ký tự)",
        "en": "reason for the rejection (1 to 2,000 characters)",
    },
    "help.keys.change_id": {
        "vi": "mã đề xuất thay đổi khóa (32 chữ số hex)",
        "en": "key change id (32 hex digits)",
    },
    "help.rewrap": {
        "vi": "bọc lại mọi phong bì trong thư mục sang phiên bản khóa mới nhất; chỉ thay phần đầu, không giải mã",
        "en": "rewrap every envelope in a folder to the newest key versions; the header only, nothing is decrypted",
    },
    "help.rewrap.path": {
        "vi": "thư mục lưu trữ (duyệt cả thư mục con), hoặc một tệp phong bì",
        "en": "archive folder (subfolders included), or one envelope file",
    },
    "help.recover": {
        "vi": "dùng token khôi phục khi mất token chính (cần hai người quản lý khóa)",
        "en": "use the recovery token when the working token is lost (needs two key custodians)",
    },
    "help.recover.start": {
        "vi": "bắt đầu phiên khôi phục với phần mã PIN của bạn; in ra mã phiên",
        "en": "start a recovery session with your PIN share; prints the session id",
    },
    "help.recover.confirm": {
        "vi": "xác nhận phiên khôi phục bằng phần mã PIN thứ hai (người quản lý khóa khác)",
        "en": "confirm a recovery session with the second PIN share (another key custodian)",
    },
    "help.recover.status": {"vi": "xem phiên khôi phục hiện tại", "en": "show the current recovery session"},
    "help.recover.end": {
        "vi": "kết thúc phiên khôi phục và đăng xuất khỏi token khôi phục",
        "en": "end the recovery session and log out of the recovery token",
    },
    "help.recover.end.session_id": {
        "vi": "mã phiên khôi phục (mặc định: phiên hiện tại)",
        "en": "recovery session id (default: the current session)",
    },
    "help.recover.rewrap": {
        "vi": "bọc lại phong bì bằng token khôi phục sang khóa mới nhất của token chính mới",
        "en": "rewrap envelopes through the recovery token onto the new working token's newest keys",
    },
    "help.recover.open": {
        "vi": "mở phong bì bằng token khôi phục (vẫn cần yêu cầu đã được phê duyệt)",
        "en": "open an envelope through the recovery token (an approved request is still needed)",
    },
    "help.recover.reason": {
        "vi": "lý do cần dùng token khôi phục (1 đến 2.000 ký tự)",
        "en": "why the recovery token is needed (1 to 2,000 characters)",
    },
    "help.recover.share_file": {
        "vi": "tệp chứa phần mã PIN của bạn (32 chữ số hex); không có thì nhập khi được hỏi",
        "en": "file holding your PIN share (32 hex digits); without it you are asked to type it",
    },
    "help.recover.session_id": {
        "vi": "mã phiên khôi phục (32 chữ số hex)",
        "en": "recovery session id (32 hex digits)",
    },

    # Argument values.
    "arg.version_invalid": {
        "vi": "phiên bản khóa không hợp lệ: {value}; dùng một số nguyên từ 1",
        "en": "invalid key version: {value}; use a whole number from 1",
    },
    "arg.id_invalid": {
        "vi": "{what} không hợp lệ: {value}; mã gồm 32 chữ số hex",
        "en": "invalid {what}: {value}; it is 32 hex digits",
    },
    "share.prompt": {
        "vi": "Nhập phần mã PIN của bạn (32 chữ số hex, không hiện trên màn hình): ",
        "en": "Type your PIN share (32 hex digits, not shown): ",
    },
    "share.stdin": {"vi": "đầu vào chuẩn", "en": "standard input"},
    "share.invalid": {
        "vi": "Phần mã PIN đọc từ {source} không phải 32 chữ số hex. Kiểm tra lại tệp hoặc nội dung đã nhập.",
        "en": "The PIN share read from {source} is not 32 hex digits. Check the file or what was typed.",
    },

    # keys list, due and pending.
    "keys.column.level": {"vi": "Độ mật", "en": "Level"},
    "keys.column.key_id": {"vi": "Khóa", "en": "Key"},
    "keys.column.version": {"vi": "Phiên bản", "en": "Version"},
    "keys.column.state": {"vi": "Trạng thái", "en": "State"},
    "keys.column.created_at": {"vi": "Tạo lúc", "en": "Created"},
    "keys.column.in_token": {"vi": "Trong token", "en": "In token"},
    "keys.column.artefacts": {"vi": "Số tài liệu", "en": "Documents"},
    "keys.column.rotation": {"vi": "Xoay vòng", "en": "Rotation"},
    "keys.column.change_id": {"vi": "Mã đề xuất", "en": "Change id"},
    "keys.column.operation": {"vi": "Thao tác", "en": "Operation"},
    "keys.column.proposer": {"vi": "Người đề xuất", "en": "Proposer"},
    "keys.column.confirmations": {"vi": "Xác nhận", "en": "Confirmed"},
    "keys.column.expires_at": {"vi": "Hết hạn lúc", "en": "Expires"},
    "keys.column.reason": {"vi": "Lý do", "en": "Reason"},
    "keys.rotation_age": {"vi": "{days} ngày tuổi", "en": "{days} days old"},
    "keys.rotation_due": {"vi": "ĐẾN HẠN ({days} ngày tuổi)", "en": "DUE ({days} days old)"},
    "keys.policy_line": {
        "vi": "{level}: khóa {key_id}, xoay vòng mỗi {days} ngày, mỗi thay đổi cần {custodians} người quản lý khóa xác nhận.",
        "en": "{level}: key {key_id}, rotated every {days} days, each change confirmed by {custodians} key custodians.",
    },
    "keys.recovery_line": {
        "vi": "  Khóa khôi phục {key_id} phiên bản {version} ({algorithm}, RSA {bits} bit, SHA-256 {fingerprint}); "
        "{missing} tài liệu chưa có khóa khôi phục này (bọc lại để thêm).",
        "en": "  Recovery key {key_id} version {version} ({algorithm}, RSA {bits} bits, SHA-256 {fingerprint}); "
        "{missing} documents do not carry it yet (rewrap adds it).",
    },
    "keys.no_recovery_line": {
        "vi": "  Chưa có khóa khôi phục: mất token chính sẽ mất khả năng mở các tài liệu của độ mật này.",
        "en": "  No recovery key: losing the working token would leave this level's documents unopenable.",
    },
    "keys.due_none": {"vi": "Không có khóa nào đến hạn xoay vòng.", "en": "No key is due for rotation."},
    "keys.due_line": {
        "vi": "{level}: khóa {key_id} phiên bản {version} đã {days} ngày tuổi, quá hạn xoay vòng {period} ngày. "
        "Chạy niemphong keys rotate.",
        "en": "{level}: key {key_id} version {version} is {days} days old, past its {period}-day rotation period. "
        "Run niemphong keys rotate.",
    },
    "keys.pending_empty": {
        "vi": "Không có đề xuất thay đổi khóa nào đang chờ xác nhận.",
        "en": "No key change is waiting for confirmation.",
    },
    "keys.change_done": {
        "vi": "Đã thực hiện: {operation} {key_id} ({level}), phiên bản {version}. Mã đề xuất: {change_id}.",
        "en": "Done: {operation}, {key_id} ({level}), version {version}. Change id: {change_id}.",
    },
    "keys.change_pending": {
        "vi": "Đã ghi đề xuất {change_id}: {operation} {key_id} ({level}). Đã có {count}/{required} người quản lý "
        "khóa xác nhận; một người quản lý khóa khác chạy: niemphong keys confirm {change_id}",
        "en": "Recorded change {change_id}: {operation}, {key_id} ({level}). {count} of {required} key custodians "
        "have confirmed; another key custodian runs: niemphong keys confirm {change_id}",
    },
    "keys.change_rejected": {
        "vi": "Đã từ chối đề xuất {change_id}: {operation} {key_id} ({level}).",
        "en": "Rejected change {change_id}: {operation}, {key_id} ({level}).",
    },

    # rewrap.
    "progress.line": {
        "vi": "[{bar}] {percent}% {files}/{total_files} tệp, {bytes}/{total_bytes}",
        "en": "[{bar}] {percent}% {files}/{total_files} files, {bytes}/{total_bytes}",
    },
    "rewrap.summary": {
        "vi": "Bọc lại xong: {rewrapped} tệp được bọc lại, {current} tệp đã dùng khóa mới nhất, "
        "{skipped} tệp bỏ qua (không phải phong bì), {failed} tệp lỗi.",
        "en": "Rewrap finished: {rewrapped} files rewrapped, {current} already on the newest keys, "
        "{skipped} skipped (not envelopes), {failed} failed.",
    },
    "rewrap.leftovers_removed": {
        "vi": "Đã xóa {count} tệp tạm còn sót từ lần bọc lại bị ngắt; các phong bì tương ứng vẫn nguyên vẹn.",
        "en": "Removed {count} temporary files left by an interrupted rewrap; their envelopes are intact.",
    },
    "rewrap.failed_file": {"vi": "{path}: {message}", "en": "{path}: {message}"},
    "rewrap.locked": {
        "vi": "Một lệnh bọc lại khác đang chạy trên thư mục {path}. Chờ lệnh đó xong rồi chạy lại.",
        "en": "Another rewrap is running on folder {path}. Wait for it to finish, then run again.",
    },
    "rewrap.file_changed": {
        "vi": "Tệp {path} bị thay đổi trong lúc đang bọc lại, nên được giữ nguyên. Chạy lại lệnh sau.",
        "en": "File {path} changed while it was being rewrapped, so it was left as it was. Run the command again later.",
    },
    "rewrap.not_recorded_hint": {
        "vi": "Tệp đã được ghi với phần đầu mới nhưng sổ đăng ký chưa ghi nhận; chạy lại lệnh để ghi nhận.",
        "en": "The file already has its new header but the registry has not recorded it; run the command again to record it.",
    },
    "rewrap.resume_hint": {
        "vi": "Các tệp đã bọc lại được giữ nguyên; chạy lại đúng lệnh này để tiếp tục từ chỗ dừng.",
        "en": "Files already rewrapped stay done; run the same command again to continue where it stopped.",
    },

    # recover.
    "recover.started": {
        "vi": "Đã bắt đầu phiên khôi phục {session_id}. Một người quản lý khóa khác phải xác nhận trước {expires}: "
        "niemphong recover confirm {session_id}",
        "en": "Started recovery session {session_id}. Another key custodian must confirm it before {expires}: "
        "niemphong recover confirm {session_id}",
    },
    "recover.confirmed": {
        "vi": "Phiên khôi phục {session_id} đã mở token khôi phục, đến {expires}. Kết thúc ngay khi xong việc: "
        "niemphong recover end",
        "en": "Recovery session {session_id} has opened the recovery token until {expires}. End it as soon as "
        "the work is done: niemphong recover end",
    },
    "recover.ended": {
        "vi": "Đã kết thúc phiên khôi phục {session_id} và đăng xuất khỏi token khôi phục.",
        "en": "Ended recovery session {session_id} and logged out of the recovery token.",
    },
    "recover.no_session": {
        "vi": "Chưa có phiên khôi phục nào từ khi niemphongd khởi động.",
        "en": "No recovery session since niemphongd started.",
    },
    "recover.field.session_id": {"vi": "Mã phiên", "en": "Session id"},
    "recover.field.state": {"vi": "Trạng thái", "en": "State"},
    "recover.field.started_by": {"vi": "Người bắt đầu", "en": "Started by"},
    "recover.field.confirmed_by": {"vi": "Người xác nhận", "en": "Confirmed by"},
    "recover.field.reason": {"vi": "Lý do", "en": "Reason"},
    "recover.field.started_at": {"vi": "Bắt đầu lúc", "en": "Started"},
    "recover.field.expires_at": {"vi": "Hết hạn lúc", "en": "Expires"},
    "recover.field.ended_at": {"vi": "Kết thúc lúc", "en": "Ended"},
}
