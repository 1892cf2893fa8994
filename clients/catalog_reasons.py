"""Short labels of niemphongd's error reasons, for the reason column of audit tables.

catalog.py merges these into CATALOG; the same rules apply. The full
``reason.*`` messages explain a failure to the user who met it, with advice;
these name it in a few words for someone reading the history later.
"""

from __future__ import annotations

REASON_LABEL_CATALOG: dict[str, dict[str, str]] = {
    "reason_label.ALREADY_APPROVED": {"vi": "đã phê duyệt rồi", "en": "already approved"},
    "reason_label.ALREADY_CONFIRMED": {"vi": "đã xác nhận rồi", "en": "already confirmed"},
    "reason_label.ALREADY_SEALED": {"vi": "đã niêm phong rồi", "en": "already sealed"},
    "reason_label.ARTEFACT_NOT_FOUND": {"vi": "không tìm thấy tài liệu", "en": "artefact not found"},
    "reason_label.AUDIT_UNAVAILABLE": {"vi": "nhật ký kiểm toán không sẵn sàng", "en": "audit log unavailable"},
    "reason_label.BATCH_NOT_APPROVED": {"vi": "lô chưa được cho phép", "en": "batch not approved"},
    "reason_label.BATCH_NOT_FOUND": {"vi": "không tìm thấy lô", "en": "batch not found"},
    "reason_label.BATCH_STATE_CONFLICT": {"vi": "lô không ở trạng thái phù hợp", "en": "batch in the wrong state"},
    "reason_label.CLASSIFICATION_REFUSED": {
        "vi": "bị từ chối theo quy tắc phân loại", "en": "rejected by the classification rules",
    },
    "reason_label.DAEMON_STOPPING": {"vi": "niemphongd đang dừng", "en": "niemphongd stopping"},
    "reason_label.EXTENSION_REJECTED": {"vi": "gia hạn không hợp lệ", "en": "extension rejected"},
    "reason_label.FIELD_TOO_LONG": {"vi": "giá trị quá dài", "en": "value too long"},
    "reason_label.INCIDENT_CLOSED": {"vi": "sự cố đã đóng", "en": "incident closed"},
    "reason_label.INCIDENT_NOT_FOUND": {"vi": "không tìm thấy sự cố", "en": "incident not found"},
    "reason_label.INTEGRITY_FAILURE": {"vi": "phong bì hỏng hoặc bị sửa đổi", "en": "envelope damaged or altered"},
    "reason_label.INTERNAL": {"vi": "lỗi nội bộ của niemphongd", "en": "niemphongd internal error"},
    "reason_label.INVALID_FIELD": {"vi": "giá trị không hợp lệ", "en": "invalid value"},
    "reason_label.KEY_CHANGE_NOT_FOUND": {"vi": "không tìm thấy đề nghị thay đổi khóa", "en": "key change not found"},
    "reason_label.KEY_CHANGE_NOT_PENDING": {
        "vi": "đề nghị thay đổi khóa không còn chờ", "en": "key change not pending",
    },
    "reason_label.KEY_CHANGE_PENDING": {"vi": "đang có đề nghị thay đổi khóa", "en": "key change already pending"},
    "reason_label.KEY_NOT_FOUND": {"vi": "không tìm thấy khóa", "en": "key not found"},
    "reason_label.KEY_RETIRED": {"vi": "khóa đã ngừng dùng", "en": "key retired"},
    "reason_label.KEY_STATE_CONFLICT": {"vi": "khóa không ở trạng thái phù hợp", "en": "key in the wrong state"},
    "reason_label.KEY_STILL_NEEDED": {"vi": "khóa vẫn còn cần dùng", "en": "key still needed"},
    "reason_label.KEY_UNAVAILABLE": {"vi": "khóa không sẵn sàng", "en": "key unavailable"},
    "reason_label.LEVEL_MISSING": {"vi": "thiếu độ mật", "en": "level missing"},
    "reason_label.LEVEL_NEVER_DIGITIZED": {
        "vi": "độ Tuyệt mật không được số hóa", "en": "Tuyệt mật is never digitized",
    },
    "reason_label.NOT_APPROVED": {"vi": "chưa được phê duyệt", "en": "not approved"},
    "reason_label.NOT_APPROVED_FOR_PRINTING": {"vi": "chưa được phê duyệt in", "en": "not approved for printing"},
    "reason_label.NOT_IN_BATCH": {"vi": "không có trong lô", "en": "not in the batch"},
    "reason_label.NOT_YOUR_ARTEFACT": {"vi": "không phải tài liệu của bạn", "en": "not the caller's artefact"},
    "reason_label.NOT_YOUR_REQUEST": {"vi": "không phải yêu cầu của bạn", "en": "not the caller's request"},
    "reason_label.PRINTING_NOT_ALLOWED": {"vi": "không được in", "en": "printing not allowed"},
    "reason_label.PROTOCOL_VIOLATION": {"vi": "yêu cầu sai giao thức", "en": "protocol violation"},
    "reason_label.RECOVERY_IN_PROGRESS": {"vi": "đang khôi phục", "en": "recovery in progress"},
    "reason_label.RECOVERY_LOGIN_FAILED": {
        "vi": "đăng nhập token khôi phục thất bại", "en": "recovery token login failed",
    },
    "reason_label.RECOVERY_NOT_ACTIVE": {"vi": "không có phiên khôi phục", "en": "recovery not active"},
    "reason_label.RECOVERY_NOT_CONFIGURED": {"vi": "chưa cấu hình khôi phục", "en": "recovery not configured"},
    "reason_label.RECOVERY_NOT_PENDING": {"vi": "phiên khôi phục không còn chờ", "en": "recovery not pending"},
    "reason_label.RENDERER_UNAVAILABLE": {"vi": "không dựng được bản in", "en": "renderer unavailable"},
    "reason_label.REQUEST_NOT_FOUND": {"vi": "không tìm thấy yêu cầu", "en": "request not found"},
    "reason_label.REQUEST_NOT_PENDING": {"vi": "yêu cầu không còn chờ duyệt", "en": "request not pending"},
    "reason_label.REWRAP_UNSUPPORTED": {"vi": "không bọc lại khóa được", "en": "rewrap not supported"},
    "reason_label.ROLE_REQUIRED": {"vi": "thiếu vai trò cần thiết", "en": "role required"},
    "reason_label.SELF_APPROVAL": {"vi": "tự phê duyệt yêu cầu của mình", "en": "own request approved"},
    "reason_label.SPOOL_DISABLED": {"vi": "chế độ spool chưa bật", "en": "spool disabled"},
    "reason_label.SPOOL_FILE_NOT_FOUND": {"vi": "không tìm thấy tệp trong spool", "en": "spool file not found"},
    "reason_label.SPOOL_FILE_REJECTED": {"vi": "tệp trong spool bị từ chối", "en": "spool file rejected"},
    "reason_label.SPOOL_IO_FAILED": {"vi": "lỗi đọc/ghi spool", "en": "spool I/O failed"},
    "reason_label.SPOOL_OUTPUT_EXISTS": {"vi": "tệp kết quả đã có trong spool", "en": "spool output exists"},
    "reason_label.SPOOL_PATH_INVALID": {"vi": "đường dẫn spool không hợp lệ", "en": "invalid spool path"},
    "reason_label.STATE_UNAVAILABLE": {"vi": "cơ sở dữ liệu trạng thái không sẵn sàng", "en": "state database unavailable"},
    "reason_label.SUSPENDED_BY_INCIDENT": {"vi": "bị tạm dừng do sự cố", "en": "suspended by an incident"},
    "reason_label.TOKEN_UNAVAILABLE": {"vi": "token không sẵn sàng", "en": "token unavailable"},
    "reason_label.TOO_MANY_PENDING": {"vi": "quá nhiều yêu cầu đang chờ", "en": "too many pending requests"},
    "reason_label.TOO_MANY_STREAMS": {"vi": "quá nhiều lượt truyền cùng lúc", "en": "too many streams"},
    "reason_label.UNKNOWN_IDENTITY": {"vi": "định danh không được nhận", "en": "unknown identity"},
    "reason_label.UNKNOWN_PROFILE": {"vi": "hồ sơ token không rõ", "en": "unknown token profile"},
    "reason_label.UNPRINTABLE_DOCUMENT": {"vi": "tài liệu không in được", "en": "document cannot be printed"},
}
