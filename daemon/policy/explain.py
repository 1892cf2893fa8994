"""Explanations of decisions in Vietnamese and English, citing the rule and the law.

The daemon writes these once, so that every client, the classification
record and an inspector read the same reason. Vietnamese is the text of
record; English is for clients run with ``--lang en``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from niemphong.daemon.levels import Level
from niemphong.daemon.policy.decision import Decision

LAW_VI = "Luật Bảo vệ bí mật nhà nước số 29/2018/QH14"
LAW_EN = "the Law on Protection of State Secrets No. 29/2018/QH14"
GUIDANCE_VI = "công văn hướng dẫn số hóa tài liệu BMNN của UBND tỉnh Đắk Lắk, tháng 5/2025"
GUIDANCE_EN = "the guidance on digitizing state-secret documents, UBND tỉnh Đắk Lắk, May 2025"

_STAMP_VI = ' Phải đóng dấu "Giải mật" lên tài liệu trước khi số hóa như tài liệu không chứa BMNN.'
_STAMP_EN = ' Stamp the document "Giải mật" before digitizing it as an ordinary document.'
_ORDINARY_VI = " Số hóa như tài liệu không chứa BMNN; không cần đóng dấu \"Giải mật\"."
_ORDINARY_EN = ' Digitize it as an ordinary document; no "Giải mật" stamp is needed.'

# code -> (Vietnamese, English). Placeholders: level, issued, years, last_day,
# today, basis, decision, item, highest, kind, decided_on, starts_on, ends_on.
_TEXTS: Mapping[str, tuple[str, str]] = {
    "PROTECTED": (
        "Niêm phong độ {level}: tài liệu ban hành ngày {issued} còn trong thời hạn bảo vệ {years} năm, "
        "đến hết ngày {last_day} (Điều 19 {law_vi}).",
        "Seal as {level}: the document issued on {issued} is within its {years}-year protection period, "
        "through {last_day} (Article 19 of {law_en}).",
    ),
    "PROTECTED_BY_STAMP": (
        'Niêm phong độ {level}: dấu "Thời hạn bảo vệ BMNN" ghi thời hạn bảo vệ đến hết ngày {last_day}, '
        "chưa kết thúc (Điều 19 {law_vi}).",
        'Seal as {level}: its "Thời hạn bảo vệ BMNN" stamp protects it through {last_day}, '
        "which has not passed (Article 19 of {law_en}).",
    ),
    "PROTECTED_BY_EXTENSION": (
        "Niêm phong độ {level}: thời hạn bảo vệ đã được gia hạn đến hết ngày {last_day} "
        "({extension_decision}; Điều 20 {law_vi}).",
        "Seal as {level}: its protection was extended through {last_day} "
        "({extension_decision}; Article 20 of {law_en}).",
    ),
    "PERIOD_ENDED": (
        "Không chứa BMNN theo điểm c ({guidance_vi}): tài liệu độ {level} ban hành ngày {issued} đã hết "
        "thời hạn bảo vệ {years} năm vào hết ngày {last_day} và không được gia hạn, nên đương nhiên được "
        "giải mật (Điều 19 và Điều 22 {law_vi})." + _ORDINARY_VI,
        "Not secret under rule c ({guidance_en}): this {level} document issued on {issued} passed the end "
        "of its {years}-year protection period on {last_day} without an extension, so it is declassified "
        "automatically (Articles 19 and 22 of {law_en})." + _ORDINARY_EN,
    ),
    "EXTENSION_ENDED": (
        "Không chứa BMNN theo điểm c ({guidance_vi}): thời hạn bảo vệ đã gia hạn đến hết ngày {last_day} "
        "({extension_decision}) cũng đã kết thúc, nên tài liệu đương nhiên được giải mật "
        "(Điều 20 và Điều 22 {law_vi})." + _ORDINARY_VI,
        "Not secret under rule c ({guidance_en}): the extended protection through {last_day} "
        "({extension_decision}) has also ended, so the document is declassified automatically "
        "(Articles 20 and 22 of {law_en})." + _ORDINARY_EN,
    ),
    "STAMP_ENDED": (
        'Không chứa BMNN theo điểm d ({guidance_vi}): dấu "Thời hạn bảo vệ BMNN" ghi thời hạn bảo vệ '
        "đến hết ngày {last_day}, đã kết thúc." + _ORDINARY_VI,
        'Not secret under rule d ({guidance_en}): its "Thời hạn bảo vệ BMNN" stamp ended the protection '
        "on {last_day}, which has passed." + _ORDINARY_EN,
    ),
    "NOT_IN_CATALOG": (
        "Không chứa BMNN theo điểm đ ({guidance_vi}): căn cứ \"{basis}\" không còn thuộc danh mục bí mật "
        "nhà nước hiện hành." + _STAMP_VI,
        "Not secret under rule đ ({guidance_en}): the basis \"{basis}\" is not in the catalog of state "
        "secrets in force." + _STAMP_EN,
    ),
    "CATALOG_SUPERSEDED": (
        "Không chứa BMNN theo điểm đ ({guidance_vi}): căn cứ \"{basis}\" dẫn danh mục {decision} đã được "
        "thay thế, không còn là danh mục bí mật nhà nước hiện hành." + _STAMP_VI,
        "Not secret under rule đ ({guidance_en}): the basis \"{basis}\" cites the catalog {decision}, which "
        "has been replaced and is no longer in force." + _STAMP_EN,
    ),
    "DECLASSIFIED": (
        "Không chứa BMNN theo điểm e ({guidance_vi}): tài liệu đã được giải mật theo {decision} ngày "
        "{decided_on} (Điều 22 {law_vi})." + _STAMP_VI,
        "Not secret under rule e ({guidance_en}): the document was declassified by {decision} of "
        "{decided_on} (Article 22 of {law_en})." + _STAMP_EN,
    ),
    "HISTORICAL_ARCHIVE": (
        "Không chứa BMNN theo điểm g ({guidance_vi}): tài liệu do Lưu trữ lịch sử lưu giữ, không xác định "
        "được cơ quan xác định BMNN, và Lưu trữ lịch sử đã quyết định giải mật theo {decision} ngày "
        "{decided_on} (pháp luật về lưu trữ)." + _STAMP_VI,
        "Not secret under rule g ({guidance_en}): a historical archive holds the document, its originating "
        "agency cannot be determined, and the archive declassified it by {decision} of {decided_on} under "
        "the law on archives." + _STAMP_EN,
    ),
    "ARCHIVE_DECISION_REQUIRED": (
        "Niêm phong độ {level}, bảo vệ đến hết ngày {last_day}: tài liệu do Lưu trữ lịch sử lưu giữ và không "
        "xác định được cơ quan xác định BMNN, nhưng chưa có quyết định giải mật của Lưu trữ lịch sử. Theo "
        "điểm g ({guidance_vi}), Lưu trữ lịch sử quyết định việc giải mật theo pháp luật về lưu trữ; chỉ khi "
        'đã có quyết định đó (ghi số và ngày quyết định) và tài liệu đã được đóng dấu "Giải mật" thì mới số '
        "hóa như tài liệu không chứa BMNN.",
        "Seal as {level}, protected through {last_day}: a historical archive holds the document and its "
        "originating agency cannot be determined, but the archive has not decided on its declassification. "
        "Under rule g ({guidance_en}), the archive decides under the law on archives; only once its decision "
        'is cited (number and date) and the document is stamped "Giải mật" may it be digitized as an '
        "ordinary document.",
    ),
    "TUYET_MAT_ARCHIVE_DECISION_REQUIRED": (
        "Từ chối: tài liệu độ Tuyệt mật do Lưu trữ lịch sử lưu giữ và không xác định được cơ quan xác định "
        "BMNN, nhưng chưa có quyết định giải mật của Lưu trữ lịch sử. Theo điểm g ({guidance_vi}), Lưu trữ "
        "lịch sử phải quyết định việc giải mật theo pháp luật về lưu trữ trước khi tài liệu được số hóa như "
        "tài liệu không chứa BMNN; đến khi đó, tài liệu độ Tuyệt mật không được số hóa ({law_vi}). "
        "Giữ nguyên bản giấy.",
        "Rejected: a historical archive holds this Tuyệt mật document and its originating agency cannot be "
        "determined, but the archive has not decided on its declassification. Under rule g ({guidance_en}), "
        "the archive must decide under the law on archives before the document can be digitized as not "
        "secret; until then a Tuyệt mật document is never digitized ({law_en}). Keep the paper original.",
    ),
    "DECLASSIFICATION_UNDATED": (
        "Từ chối: quyết định giải mật ({decision}) không ghi ngày. Theo điểm e ({guidance_vi}), ghi cả số và "
        "ngày của quyết định.",
        "Rejected: the declassification decision ({decision}) has no date. Under rule e ({guidance_en}), give "
        "both its number and its date.",
    ),
    "ARCHIVE_DECISION_UNDATED": (
        "Từ chối: quyết định giải mật của Lưu trữ lịch sử ({decision}) không ghi ngày. Theo điểm g "
        "({guidance_vi}), ghi cả số và ngày của quyết định.",
        "Rejected: the historical archive's declassification decision ({decision}) has no date. Under rule g "
        "({guidance_en}), give both its number and its date.",
    ),
    "TUYET_MAT": (
        "Từ chối: tài liệu độ Tuyệt mật không được số hóa, kể cả khi đã quá 30 năm, trừ khi đã có quyết định "
        "giải mật ({guidance_vi}; {law_vi}). Giữ nguyên bản giấy.",
        "Rejected: Tuyệt mật documents are never digitized, even after 30 years, unless declassified by "
        "decision ({guidance_en}; {law_en}). Keep the paper original.",
    ),
    "LEVEL_MISSING": (
        "Từ chối: thiếu độ mật (Mật, Tối mật) và không có quyết định độ mật theo loại văn bản.",
        "Rejected: no level (Mật, Tối mật) and no standing decision for the kind of document.",
    ),
    "ISSUED_AFTER_TODAY": (
        "Từ chối: ngày ban hành {issued_on} sau ngày hôm nay ({today}).",
        "Rejected: the issue date {issued_on} is after today ({today}).",
    ),
    "STAMP_STARTS_BEFORE_ISSUE": (
        'Từ chối: dấu "Thời hạn bảo vệ BMNN" bắt đầu ngày {starts_on}, trước ngày ban hành {issued}.',
        'Rejected: the "Thời hạn bảo vệ BMNN" stamp starts on {starts_on}, before the issue date {issued}.',
    ),
    "STAMP_ENDS_BEFORE_START": (
        'Từ chối: dấu "Thời hạn bảo vệ BMNN" kết thúc ngày {ends_on}, trước ngày bắt đầu của chính nó.',
        'Rejected: the "Thời hạn bảo vệ BMNN" stamp ends on {ends_on}, before its own start.',
    ),
    "STAMP_ENDS_BEFORE_ISSUE": (
        'Từ chối: dấu "Thời hạn bảo vệ BMNN" kết thúc ngày {ends_on}, trước ngày ban hành {issued}.',
        'Rejected: the "Thời hạn bảo vệ BMNN" stamp ends on {ends_on}, before the issue date {issued}.',
    ),
    "STAMP_BEYOND_PERIOD": (
        'Từ chối: dấu "Thời hạn bảo vệ BMNN" kết thúc ngày {ends_on}, sau ngày cuối của thời hạn {years} năm '
        "({last_day}); dấu này chỉ được rút ngắn thời hạn (Điều 19 {law_vi}). Gia hạn được ghi riêng.",
        'Rejected: the "Thời hạn bảo vệ BMNN" stamp ends on {ends_on}, after the last day of the {years}-year '
        "period ({last_day}); such a stamp can only shorten it (Article 19 of {law_en}). Record an extension "
        "separately.",
    ),
    "EXTENSION_NOT_LATER": (
        "Từ chối: gia hạn đến ngày {ends_on} không sau ngày cuối của thời hạn bảo vệ ({last_day}).",
        "Rejected: the extension to {ends_on} does not go past the last protected day ({last_day}).",
    ),
    "EXTENSION_DECIDED_AFTER_TODAY": (
        "Từ chối: quyết định gia hạn ghi ngày {decided_on}, sau ngày hôm nay ({today}).",
        "Rejected: the extension decision is dated {decided_on}, after today ({today}).",
    ),
    "EXTENSION_DECIDED_LATE": (
        "Từ chối: quyết định gia hạn ngày {decided_on} ra sau khi thời hạn bảo vệ đã kết thúc ({last_day}); "
        "khi đó tài liệu đã đương nhiên được giải mật (Điều 22 {law_vi}).",
        "Rejected: the extension decision of {decided_on} came after the protection ended ({last_day}), when "
        "the document had already been declassified automatically (Article 22 of {law_en}).",
    ),
    "DECLASSIFICATION_AFTER_TODAY": (
        "Từ chối: quyết định giải mật ghi ngày {decided_on}, sau ngày hôm nay ({today}).",
        "Rejected: the declassification decision is dated {decided_on}, after today ({today}).",
    ),
    "DECLASSIFICATION_BEFORE_ISSUE": (
        "Từ chối: quyết định giải mật ghi ngày {decided_on}, trước ngày ban hành {issued}.",
        "Rejected: the declassification decision is dated {decided_on}, before the issue date {issued}.",
    ),
    "BASIS_UNPARSABLE": (
        'Từ chối: không đọc được căn cứ "{basis}". Ghi căn cứ theo dạng "Điểm a Khoản 2 Điều 1 Quyết định '
        'số …/QĐ-TTg" (điểm, khoản, điều của quyết định danh mục bí mật nhà nước).',
        'Rejected: cannot read the basis "{basis}". Write it as "Điểm a Khoản 2 Điều 1 Quyết định số '
        '…/QĐ-TTg" (point, clause and article of the catalog decision).',
    ),
    "BASIS_DECISION_UNKNOWN": (
        'Từ chối: "{decision}" trong căn cứ "{basis}" không có trong các danh mục bí mật nhà nước đã nạp '
        "vào niemphongd. Sửa căn cứ; nếu đó là danh mục đã được thay thế, người quản trị khai báo nó trong "
        "chính sách.",
        'Rejected: "{decision}" in the basis "{basis}" is not among the catalogs of state secrets loaded into '
        "niemphongd. Correct the basis; if it is a replaced catalog, the administrator declares it in the policy.",
    ),
    "ABOVE_CATALOG_LEVEL": (
        'Từ chối: độ {level} cao hơn độ mật cao nhất ({highest}) mà mục danh mục "{item}" cho phép. '
        "Kiểm tra lại độ mật hoặc căn cứ.",
        'Rejected: {level} is above the highest level ({highest}) that the catalog item "{item}" allows. '
        "Check the level or the basis.",
    ),
    "BASIS_REQUIRED": (
        "Từ chối: chính sách yêu cầu căn cứ xác định độ mật (điểm, khoản, điều của quyết định danh mục "
        "bí mật nhà nước).",
        "Rejected: the policy requires the classification basis (point, clause and article of the catalog "
        "decision).",
    ),
    "STANDING_DECISION_UNKNOWN": (
        'Từ chối: chính sách không có quyết định độ mật cho loại văn bản "{kind}".',
        'Rejected: the policy has no standing decision for the kind of document "{kind}".',
    ),
    "STANDING_DECISION_LEVEL_MISMATCH": (
        'Từ chối: quyết định độ mật cho loại văn bản "{kind}" xác định độ {decided_level}, khác với độ {level} '
        "đã ghi.",
        'Rejected: the standing decision for "{kind}" sets {decided_level}, not the stated {level}.',
    ),
    "STANDING_DECISION_BASIS_MISMATCH": (
        'Từ chối: căn cứ đã ghi khác với căn cứ "{basis}" của quyết định độ mật cho loại văn bản "{kind}".',
        'Rejected: the stated basis differs from "{basis}", the basis of the standing decision for "{kind}".',
    ),
    "STANDING_DECISION_LATER": (
        'Từ chối: tài liệu ban hành ngày {issued}, trước {decision} (ngày {decided_on}) xác định độ mật cho '
        'loại văn bản "{kind}"; quyết định đó không áp dụng cho tài liệu này.',
        'Rejected: the document was issued on {issued}, before {decision} ({decided_on}) set the level of the '
        'kind "{kind}"; that decision does not cover it.',
    ),
    "INVALID_FIELD": (
        "Từ chối: {field} không hợp lệ.",
        "Rejected: {field} is invalid.",
    ),
}

_LEVEL_LABELS = {
    Level.MAT: ("Mật", "Mật (Confidential)"),
    Level.TOI_MAT: ("Tối mật", "Tối mật (Secret)"),
    Level.TUYET_MAT: ("Tuyệt mật", "Tuyệt mật (Top Secret)"),
}

DATE_KEYS = frozenset({"issued_on", "last_day", "decided_on", "starts_on", "ends_on"})


def codes() -> frozenset[str]:
    """Return every decision code that has an explanation."""
    return frozenset(_TEXTS)


def explain(decision: Decision, issued_on: dt.date | None = None) -> tuple[str, str]:
    """Return the Vietnamese and English explanations of ``decision``."""
    vi_params = _params(decision, issued_on, vietnamese=True)
    en_params = _params(decision, issued_on, vietnamese=False)
    vi_text, en_text = _TEXTS[decision.code]
    return vi_text.format_map(vi_params), en_text.format_map(en_params)


class _Missing(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "?"


def _params(decision: Decision, issued_on: dt.date | None, vietnamese: bool) -> _Missing:
    index = 0 if vietnamese else 1
    params = _Missing(
        law_vi=LAW_VI, law_en=LAW_EN, guidance_vi=GUIDANCE_VI, guidance_en=GUIDANCE_EN,
        today=_date(decision.on, vietnamese),
    )
    if decision.level is not None:
        params["level"] = _LEVEL_LABELS[decision.level][index]
    if issued_on is not None:
        params["issued"] = _date(issued_on, vietnamese)
    for key, value in decision.details.items():
        if key in DATE_KEYS and value:
            params[key] = _date(dt.date.fromisoformat(value), vietnamese)
        elif key in {"highest", "decided_level"}:
            params[key] = _LEVEL_LABELS[Level.from_config_name(value)][index]
        else:
            params[key] = value
    if "issued" not in params and "issued_on" in params:
        params["issued"] = params["issued_on"]
    if not params.get("extension_decision"):
        params["extension_decision"] = "quyết định gia hạn" if vietnamese else "extension decision"
    return params


def _date(value: dt.date, vietnamese: bool) -> str:
    return value.strftime("%d/%m/%Y") if vietnamese else value.isoformat()
