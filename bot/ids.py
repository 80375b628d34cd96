"""Every callback, action and block id, shared by the builders and the listeners."""

from enum import StrEnum


class ActionId(StrEnum):
    DISCUSS = "gap_discuss"
    CREATE_ACTION = "gap_create_action"
    SHOW_CHART = "gap_show_chart"
    POST_TO_CHANNEL = "gap_post_to_channel"
    DRILL_DOWN = "gap_drill_down"
    ROOT_CAUSE_CATEGORY = "root_cause_category"
    SUMMARIZE = "root_cause_summarize"
    CONFIRM_ROOT_CAUSE = "root_cause_confirm"
    ACTION_PROGRESS = "action_progress"
    ACTION_MILESTONE_DONE = "action_milestone_done"
    ACTION_SNOOZE = "action_snooze"
    ACTION_COMPLETE = "action_complete"
    ACTION_REASSIGN = "action_reassign"
    ACTION_EDIT = "action_edit"
    ACTION_CANCEL = "action_cancel"
    ADD_MILESTONE = "add_milestone"
    ACTION_HAND_BACK = "action_hand_back"
    HOME_REFRESH = "home_refresh"
    HOME_SEARCH_HISTORY = "home_search_history"


class CallbackId(StrEnum):
    SMART_ACTION = "smart_action_modal"
    PROGRESS = "action_progress_modal"
    COMPLETE = "action_complete_modal"
    REASSIGN = "action_reassign_modal"
    EDIT_ACTION = "action_edit_modal"
    CANCEL_ACTION = "action_cancel_modal"
    # The message shortcut "Create SMART action" (slack_manifest.json).
    SMART_ACTION_SHORTCUT = "create_smart_action"
    CONFIRM_ROOT_CAUSE = "root_cause_confirm_modal"
    HISTORY_SEARCH = "history_search_modal"


class BlockId(StrEnum):
    TITLE = "title"
    OWNER = "owner"
    METRIC = "metric"
    BASELINE = "baseline"
    TARGET = "target"
    EXPECTED_IMPACT = "expected_impact"
    RESOURCES = "resources"
    CONFIDENCE = "confidence"
    DUE_DATE = "due_date"
    MILESTONE_NAME = "milestone_name_{}"
    MILESTONE_DATE = "milestone_date_{}"
    PROGRESS_VALUE = "progress_value"
    PROGRESS_NOTE = "progress_note"
    REALISED_IMPACT = "realised_impact"
    NEW_OWNER = "new_owner"
    CANCEL_REASON = "cancel_reason"
    ADD_MILESTONE = "add_milestone"
    ROOT_CAUSE_CATEGORY = "root_cause_category"
    ROOT_CAUSE_SUMMARY = "root_cause_summary"
    TRIGGER_ACTIONS = "trigger_actions"
    EXPLORE_ACTIONS = "explore_actions"
    ACTION_CARD = "action_card_{}"  # the card's buttons, per action id
    HISTORY_FILTERS = "history_filters"


# Every input block's element uses this action id; the block id says which field it is.
INPUT = "input"
