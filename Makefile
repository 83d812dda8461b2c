# imgnode: work in progress (issue 2, the foundation, is not finished).
BUILD ?= build
CC ?= cc
WARN := -Wall -Wextra
ifeq ($(WERROR),1)
WARN += -Werror
endif
override CFLAGS := -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) -Iinclude -MMD -MP $(CFLAGS)
CORE_SRC := core/log.c core/conf_value.c core/config.c core/conf_keys.c
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/%.o)

.DELETE_ON_ERROR:
.PHONY: all deps check clean

all: $(CORE_OBJ) $(BUILD)/test/test_config

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

deps:
	test/lib/deps

check: deps
	$(MAKE) all
	test/run-checks

clean:
	rm -rf $(BUILD)

-include $(CORE_OBJ:.o=.d) $(BUILD)/test/test_config.d

$(BUILD)/test/test_config: test/unit/test_config.c $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Icore $(filter %.c %.o,$^) -o $@ $(LDFLAGS) -linih -lcmocka
