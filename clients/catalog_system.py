"""Operating-system error texts (strerror) in Vietnamese and English.

catalog.py merges these into CATALOG; the same rules apply. The key is
``os_error.`` followed by the errno name. The English texts are the ones
glibc prints; an errno without an entry is shown with the system's own text.
"""

from __future__ import annotations

SYSTEM_CATALOG: dict[str, dict[str, str]] = {
    "os_error.ENOSPC": {"vi": "Hết chỗ trống trên ổ đĩa", "en": "No space left on device"},
    "os_error.EDQUOT": {"vi": "Đã dùng hết hạn mức dung lượng (quota) của người dùng", "en": "Disk quota exceeded"},
    "os_error.EFBIG": {"vi": "Tệp vượt quá kích thước tối đa hệ thống cho phép", "en": "File too large"},
    "os_error.EACCES": {"vi": "Không có quyền truy cập", "en": "Permission denied"},
    "os_error.EPERM": {"vi": "Thao tác không được phép", "en": "Operation not permitted"},
    "os_error.EROFS": {"vi": "Hệ thống tệp chỉ cho phép đọc", "en": "Read-only file system"},
    "os_error.ENOENT": {"vi": "Không có tệp hoặc thư mục này", "en": "No such file or directory"},
    "os_error.EIO": {"vi": "Lỗi vào/ra của thiết bị", "en": "Input/output error"},
    "os_error.EISDIR": {"vi": "Đây là một thư mục", "en": "Is a directory"},
    "os_error.ENOTDIR": {"vi": "Không phải là thư mục", "en": "Not a directory"},
    "os_error.EEXIST": {"vi": "Tệp đã tồn tại", "en": "File exists"},
    "os_error.EPIPE": {"vi": "Đường ống đã bị đóng ở đầu kia", "en": "Broken pipe"},
    "os_error.ENAMETOOLONG": {"vi": "Tên tệp quá dài", "en": "File name too long"},
    "os_error.EMFILE": {"vi": "Tiến trình đã mở quá nhiều tệp", "en": "Too many open files"},
    "os_error.ENOTEMPTY": {"vi": "Thư mục không rỗng", "en": "Directory not empty"},
    "os_error.EXDEV": {"vi": "Không thể liên kết giữa hai hệ thống tệp khác nhau", "en": "Invalid cross-device link"},
    "os_error.ETXTBSY": {"vi": "Tệp đang được sử dụng", "en": "Text file busy"},
    "os_error.EBUSY": {"vi": "Thiết bị hoặc tài nguyên đang bận", "en": "Device or resource busy"},
    "os_error.ELOOP": {"vi": "Quá nhiều liên kết tượng trưng lồng nhau", "en": "Too many levels of symbolic links"},
    "os_error.ENXIO": {"vi": "Không có thiết bị hoặc địa chỉ này", "en": "No such device or address"},
    "os_error.ENOMEM": {"vi": "Không đủ bộ nhớ", "en": "Cannot allocate memory"},
    "os_error.ETIMEDOUT": {"vi": "Hết thời gian chờ kết nối", "en": "Connection timed out"},
    "os_error.ECONNREFUSED": {"vi": "Kết nối bị từ chối", "en": "Connection refused"},
    "os_error.ESTALE": {"vi": "Tệp trên ổ mạng không còn hợp lệ (stale file handle)", "en": "Stale file handle"},
}
